-- What the player paid the store for a purchase, where the store says it:
-- Apple's signed transaction carries price (milliunits of currency) and
-- currency (ISO 4217). NULL where unknown (Google's purchase records carry
-- no price; purchases redeemed before this migration). The consumption
-- information coinop sends Apple declares lifetime dollars purchased and
-- refunded only from these, and only when every purchase of the player
-- has a USD price (entitlements/consumption.go).
ALTER TABLE store_purchases
  ADD COLUMN price_milli bigint CHECK (price_milli >= 0),
  ADD COLUMN currency text CHECK (currency ~ '^[A-Z]{3}$');
