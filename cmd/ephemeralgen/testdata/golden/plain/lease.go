package plain

// lease has a single key field.
//
//ephemeral:store id=leases ttl=10s key=Name
type lease struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
}
