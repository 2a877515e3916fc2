"""Storage: the database connection and the request recorder."""
