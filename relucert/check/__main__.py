"""``python -m relucert.check CERTIFICATE.json``: the checker without the rest of the package."""
from .kernel import main

raise SystemExit(main())
