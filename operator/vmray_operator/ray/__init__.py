"""The only code that talks to Ray: its dashboard's HTTP API."""
