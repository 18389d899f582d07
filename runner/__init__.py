"""tierlock's runner: campaigns (the tier ladder), audit, gates, ledger and the CLI."""
