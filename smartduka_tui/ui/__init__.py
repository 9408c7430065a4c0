"""The Textual cashier and manager app."""
