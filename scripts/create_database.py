"""Create the database named in DATABASE_URL if it does not exist (idempotent)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.settings import get_settings


def main() -> None:
    url = make_url(get_settings().database_url)
    admin = sa.create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
        ).scalar()
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
            print(f"created database {url.database}")
    admin.dispose()


if __name__ == "__main__":
    main()
