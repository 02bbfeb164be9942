from alembic import context

from kb.models import Base
import kb.early_warning  # noqa: F401
import kb.statistics  # noqa: F401
import kb.precedents  # noqa: F401  (accounts, audit log, sessions: imports kb.accounts)

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
