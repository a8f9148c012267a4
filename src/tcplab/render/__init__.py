"""Pictures of a trace: SVG sequence and state diagrams, and a self-contained HTML report.

``render.svg.sequence_svg``, ``render.svg.state_diagram_svg`` and
``render.html.report_html`` take the event list of :mod:`tcplab.trace` and
return text; nothing here does I/O.  See docs/pictures.md.
"""
