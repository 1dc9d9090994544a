"""Backend-agnostic verbs: ``client.images``, ``client.videos``, ``client.tasks``, ``account``."""
