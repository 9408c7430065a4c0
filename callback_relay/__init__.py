"""The callback relay: receives Daraja callbacks for many shops, stores them durably and feeds
each till only its own events."""
