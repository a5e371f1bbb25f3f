"""The script Streamlit runs (``python -m telemetry.panel`` runs it with the right options)."""

from telemetry.panel.ui import main

main()
