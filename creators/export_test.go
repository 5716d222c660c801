package creators

// SQLLockCredits is the refund's read of a purchase's credits, for the test
// that its plan reads no whole table.
const SQLLockCredits = sqlLockCredits
