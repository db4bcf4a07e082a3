"""The vocabulary every room shares: message records, table rows, levels, categories."""
