"""Ingress, the HTTP edge: the app (app.py), who is calling (auth.py), bodies within limits
(bodies.py), paths, rate limits, refusals (errors.py), and the routes: send.py (sending and
validating messages), pubconfig.py (webhooks), status_messages.py, admin.py, registry.py and
views.py (the operator's). Routes parse and authenticate; use cases (dip.node) do the rest."""
