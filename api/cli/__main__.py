"""``python -m api.cli …`` (how ``creditmesh run`` starts the API in its own process)."""

from api.cli import main

main()
