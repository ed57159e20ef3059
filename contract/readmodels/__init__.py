"""Read models of contract events shared by several services."""
