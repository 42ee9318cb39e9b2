"""Pages of the service-quality plugin (registered by workers.quality through ``rt.web_setups``):

- ``/transparencia`` and ``/transparencia.csv``: public results (no login);
- ``/supervision`` and ``/supervision/<figure>.csv``: the supervisors' dashboard;
- ``/admin/auditoria`` (+ ``.csv``): the audit log of people's actions (admins);
- ``/admin/datos-personales``: export or erase one person's data (admins);
- ``/encuesta/<signed token>``: the public satisfaction survey;
- ``/metrics``: Prometheus metrics (bearer token when ``metrics.token`` is set).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def setup_web(app: Any, rt: Any) -> None:
    from web.quality import views
    from web.templating import add_nav, add_template_dir

    add_template_dir(app, TEMPLATES)
    views.add_routes(app)
    add_nav(app, "/supervision", "Supervisión", "supervisor")
    add_nav(app, "/transparencia", "Transparencia", "agent")
    add_nav(app, "/admin/auditoria", "Auditoría", "admin")
    add_nav(app, "/admin/datos-personales", "Datos personales", "admin")
