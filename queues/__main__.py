"""``python -m queues``: the router process (same as ``python -m queues.router``)."""
from queues.router import main

raise SystemExit(main())
