"""OpenAI-compatible Videos API server: FastAPI routes, SQLAlchemy job store, worker threads, web page."""

from kinema.server.app import ServerSettings, create_app
from kinema.server.store import Store, default_data_dir, default_db_url

__all__ = ["ServerSettings", "Store", "create_app", "default_data_dir", "default_db_url"]
