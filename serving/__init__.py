"""The HTTP API: app factory (:func:`serving.app.create_app`), write routers, settings and auth."""
