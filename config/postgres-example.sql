CREATE TABLE IF NOT EXISTS customers (id serial PRIMARY KEY, email text NOT NULL, phone text, profile jsonb, created_at timestamptz DEFAULT now());
INSERT INTO customers (email, phone, profile) VALUES ('peter@initech.com', '+1 555 0100', '{"company": "Initech"}');
