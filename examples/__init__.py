"""Examples; a package so that tests can import examples.pt2_cases (the scripts also run standalone)."""
