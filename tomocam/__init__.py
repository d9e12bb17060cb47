"""tomocam."""
