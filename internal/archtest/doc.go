// Package archtest holds no code: its test enforces the direction of
// dependencies between coinop's packages, so a domain package that starts to
// import HTTP code fails CI instead of a code review.
package archtest
