"""Market: markets, booths and the pages visitors land on."""
