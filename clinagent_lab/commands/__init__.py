"""Sub-commands of the ``clinagent`` CLI that live in modules of their own (each exposes ``register``)."""
