"""zoopt's own Gymnasium environments (registered under the ``zoopt/`` namespace)."""
