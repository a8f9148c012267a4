"""The test tree's root: pytest puts this folder on ``sys.path`` (rootdir conftest), so the
helpers kept here (``leftovers``) can be imported by tests in any folder."""
