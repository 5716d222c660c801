package creators

import "errors"

// Errors. server/errors.go maps each to a problem code.
var (
	// ErrNotFound: no creator with that id (unknown_creator).
	ErrNotFound = errors.New("creators: no such creator")
	// ErrExists: a creator with that id exists (creator_exists).
	ErrExists = errors.New("creators: creator exists")
	// ErrUnknownCode: no creator has that code (unknown_creator_code).
	ErrUnknownCode = errors.New("creators: unknown creator code")
	// ErrCodeTaken: the code, in any case, belongs to a creator already
	// (creator_code_taken).
	ErrCodeTaken = errors.New("creators: creator code taken")
	// ErrSuspended: the creator is suspended (creator_suspended).
	ErrSuspended = errors.New("creators: creator suspended")
	// ErrOwnCode: a creator's own player may not use their code
	// (own_creator_code).
	ErrOwnCode = errors.New("creators: own creator code")
	// ErrPlayerLinked: the player is linked to another creator already
	// (creator_player_linked).
	ErrPlayerLinked = errors.New("creators: player linked to another creator")
	// ErrBelowMinimum: nothing available reaches the payout minimum
	// (payout_below_minimum).
	ErrBelowMinimum = errors.New("creators: available earnings below the payout minimum")
)

// InvalidError is a request field out of range (invalid_request).
type InvalidError struct {
	Field, Message string
}

func (e *InvalidError) Error() string { return "creators: " + e.Field + ": " + e.Message }
