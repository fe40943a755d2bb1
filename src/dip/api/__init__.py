"""HTTP interface: participant routes (the v2.1.0 API) and the operator's admin routes."""

from dip.api.app import create_app

__all__ = ["create_app"]
