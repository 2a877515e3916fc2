"""Analytics: reports over the request log, prices, and the operations commands."""
