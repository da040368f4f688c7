"""`python -m omni_crawler`: parse flags and serve."""

import uvicorn

from .app import create_app
from .config import from_args


def main() -> None:
    """Runs the service until interrupted."""
    settings = from_args()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
