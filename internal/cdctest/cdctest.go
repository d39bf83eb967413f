// Package cdctest builds change-event parts for tests.
package cdctest

import (
	"fmt"

	"github.com/oppsync/oppsync/pkg/cdc"
)

// Fields turns name, value pairs into changed fields. A value is a string,
// an int or float64 (a number), a bool, nil (null) or a cdc.Value.
func Fields(kv ...any) []cdc.Field {
	var out []cdc.Field
	for i := 0; i+1 < len(kv); i += 2 {
		var v cdc.Value
		switch x := kv[i+1].(type) {
		case string:
			v = cdc.String(x)
		case int:
			v = cdc.Number(float64(x))
		case float64:
			v = cdc.Number(x)
		case bool:
			v = cdc.Bool(x)
		case nil:
			v = cdc.Null
		case cdc.Value:
			v = x
		default:
			panic(fmt.Sprintf("cdctest.Fields: %s has a value of type %T", kv[i], x))
		}
		out = append(out, cdc.Field{Name: kv[i].(string), Value: v, Changed: true})
	}
	return out
}
