"""Drift and expiry: what differs between git and the backend, what expires, what waits on people."""
