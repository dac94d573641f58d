"""The built-in web view (no Grafana needed): a zone overview and a live page per site,
served by the project's FastAPI app on loopback with every asset local (ECharts vendored in
``static/vendor/echarts``). Include :data:`router` in any FastAPI app; it reads the
:class:`core.settings.Settings` from ``app.state.settings`` (else from the environment)."""

from api.web.routes import router

__all__ = ["router"]
