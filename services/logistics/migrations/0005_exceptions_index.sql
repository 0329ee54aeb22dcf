-- GET /parcels/exceptions: parcels in a delivery exception, lost, or stalled (the watchdog's
-- mark for the current silence), newest first, without reading every delivered parcel.
CREATE INDEX shipments_exceptions ON shipments (coalesce(last_event_at, shipped_at) DESC)
    WHERE status IN ('failed_attempt', 'exception', 'returned_to_sender', 'lost')
       OR stalled_for IS NOT NULL;
