"""``tinyseg report``: Markdown tables of scores tables and tune-oii searches."""
