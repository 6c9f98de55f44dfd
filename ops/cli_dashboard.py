"""`mlops dashboard`: the monitoring dashboard on 127.0.0.1 (a free port unless one is given)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ops.commands import ProfileOpt, app, err


@app.command()
def dashboard(
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 0,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you mean to expose it).")] = "127.0.0.1",
    refresh: Annotated[float, typer.Option(help="Seconds a loaded use case is reused before re-reading.")] = 30.0,
    profile: ProfileOpt = None,
) -> None:
    """Serve the monitoring dashboard: windows, drift, estimated vs realized performance and value, models."""
    from adapters.processes import free_port
    from ops.dashboard import Loader, usecase_names
    from services.dashboard import create_app

    loader = Loader(profile)
    chosen = port or free_port()
    app_ = create_app(usecase_names(), loader.load, loader.report, refresh_seconds=refresh)
    url = f"http://{host}:{chosen}/"
    # one line on stdout a supervisor (mlops stack up, a test) can read; the rest goes to stderr
    sys.stdout.write(json.dumps({"url": url}) + "\n")
    sys.stdout.flush()
    err.print(f"dashboard on {url}")
    app_.run(host=host, port=chosen, debug=False)
