"""The bundled workflows. Each module declares one with ``app.engine.Workflow``."""
