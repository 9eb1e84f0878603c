// Package options is an error test case: problems in the directives themselves.
package options

// A has a misspelled option, a repeated one and one without a value.
//
//ephemeral:store id=a tll=30s ttl=1m ttl=2m maxEntries
type A struct{ X string }

// B has bad values.
//
//ephemeral:store id=b ttl=30 retention=-1s maxPayload=0 maxEvents=1e3 name=b-c tenant=
type B struct{ X string }

// C has neither id nor ttl.
//
//ephemeral:store key=X
type C struct{ X string }

// D has a misspelled verb.
//
//ephemeral:stor id=d ttl=1s
type D struct{ X string }

//ephemeral:store id=f ttl=1s
func F() {}

// E has an option nobody would guess and a non-positive ttl.
//
//ephemeral:store id=e ttl=0s color=red
type E struct{ X string }

// G has two directives.
//
//ephemeral:store id=g ttl=1s
//ephemeral:store id=g2 ttl=1s
type G struct{ X string }

// H has a space after the slashes, which makes its directive an ordinary comment.
//
// ephemeral:store id=h ttl=1s
type H struct{ X string }

// I has its directive in a block comment.
/* ephemeral:store id=i ttl=1s */
type I struct{ X string }

// J has a tab after the slashes.
//
//	ephemeral:store id=j ttl=1s
type J struct{ X string }

// K mentions ephemeral:store in prose, which is no directive.
type K struct{ X string }

// Q has quoted values: one with a space, one that is never closed.
//
//ephemeral:store id="has space" ttl=1s tenant="open name=Q2
type Q struct{ X string }

// R has a quoted value of a misspelled option, and an empty quoted value.
//
//ephemeral:store id=r tll="30s" name=""
type R struct{ X string }

// S has spaces around and after =, and in its list of key fields.
//
//ephemeral:store id=s ttl = 30s key=X, Y tenant= t retention =5m
type S struct{ X, Y string }

// T separates its options with commas.
//
//ephemeral:store id=t,ttl=30s,key=X
type T struct{ X string }

// U has a key list with a space before the comma, and one ending in a comma.
//
//ephemeral:store id=u ttl=1s key=X ,Y maxEvents=5
type U struct{ X, Y string }

//ephemeral:store id=v ttl=1s key=X, maxEvents=5
type V struct{ X, Y string }

// W's directive is cut off from it by a blank line.
//
//ephemeral:store id=w ttl=1s

type W struct{ X string }

// X quotes a value with a comma in it.
//
//ephemeral:store id="x,ttl=1s" ttl=1s
type X struct{ X string }

// Y has an empty list of key fields, and Z one with two commas in a row.
//
//ephemeral:store id=y ttl=1s key=
type Y struct{ X string }

//ephemeral:store id=z ttl=1s key=X,,Y
type Z struct{ X, Y string }

// AA has a comment after its options.
//
//ephemeral:store id=aa ttl=1s // the store of AA
type AA struct{ X string }

//ephemeral:store id=ab ttl= // no ttl yet
type AB struct{ X string }
