from tests.e2e.conftest import gateway  # noqa: F401 - shared fixtures
from tests.middleware.conftest import make_client, upstream  # noqa: F401
