"""Operations: metrics, the health and metrics server, backups, the container health check."""
