"""The scoring server copied into every serving image (stdlib + the flavor's own libraries)."""
