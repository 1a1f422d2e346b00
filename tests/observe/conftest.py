from tests.middleware.conftest import make_client, upstream  # noqa: F401 - shared fixtures
