"""gunicorn's own settings for the ``web`` process (read from the working directory).

- A configuration error stops the master at once with one line naming the
  variable, instead of every worker printing a traceback and the arbiter
  reporting "Worker failed to boot".
- No control socket: gunicorn 25+ opens one at a single per-user path
  (``~/.gunicorn/gunicorn.ctl``), so two web processes on one machine (two
  deployments, or the tests beside a running system) would remove each
  other's. Stepwise does not use ``gunicornc``; supervisorctl restarts web.
  Older gunicorns ignore the unknown setting.
"""

import sys

from app.settings import ConfigError, load_settings

try:
    load_settings()
except ConfigError as exc:
    sys.exit(f"stepwise web: configuration error: {exc}")

control_socket_disable = True
