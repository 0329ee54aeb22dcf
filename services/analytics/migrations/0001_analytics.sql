-- The read model: every order status change, and each order's current status. Correct when
-- events arrive late or twice: the newest `occurred_at` wins, each event is stored once.
CREATE TABLE orders (
    order_key         text PRIMARY KEY,
    order_id          text NOT NULL,
    store             text NOT NULL,
    external_order_id text NOT NULL,
    status            text NOT NULL,
    status_at         timestamptz NOT NULL,
    first_seen        timestamptz NOT NULL
);
CREATE INDEX orders_status ON orders (status);

CREATE TABLE timeline (
    event_id    uuid PRIMARY KEY,
    order_key   text NOT NULL,
    status      text NOT NULL,
    occurred_at timestamptz NOT NULL,
    reasons     jsonb NOT NULL,
    details     jsonb NOT NULL
);
CREATE INDEX timeline_order ON timeline (order_key, occurred_at);

CREATE TABLE refunds (
    event_id    uuid PRIMARY KEY,
    order_key   text NOT NULL,
    request_id  text NOT NULL,
    amount      numeric(14, 2) NOT NULL,
    currency    text NOT NULL,
    occurred_at timestamptz NOT NULL
);

CREATE TABLE feedback (
    event_id    uuid PRIMARY KEY,
    order_key   text NOT NULL,
    rating      int NOT NULL,
    occurred_at timestamptz NOT NULL
);
