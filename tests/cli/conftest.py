"""The CLI tests reuse the API tests' real uvicorn server fixture."""

from ..api.conftest import make_server  # noqa: F401  (a fixture)
