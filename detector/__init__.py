"""detector: traffic anomaly detection for long-poll API endpoints.

Data flows one way: ingest -> features -> model -> policy -> store -> api / cli.
Modules lower in the flow never import modules higher up; nothing imports ``api`` or ``cli``.
"""

__version__ = "0.1.0"
