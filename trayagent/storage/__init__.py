"""Facility storage through rclone: the rclone daemon and its rc API, the target, transfers, naming."""
