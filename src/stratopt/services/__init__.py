"""User strategies: validation, ownership and sharing, history, listing (store + strategies)."""
