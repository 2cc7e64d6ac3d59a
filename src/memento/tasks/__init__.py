"""Generated task families for training and evaluating real models (`ledger`: quantity tracking)."""
