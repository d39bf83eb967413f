package triggers

import "github.com/oppsync/oppsync/pkg/cdc"

// Currency converts opportunity amounts to the org's default currency
// (CONTRACT §2 currency.*). The zero value converts nothing.
type Currency struct {
	Default string             // ISO code of the default currency
	Rates   map[string]float64 // ISO code → rate to Default
}

// Rate returns the conversion rate of the opportunity's currency to the
// default one (1 when no conversion applies).
func (c Currency) Rate(o *Opportunity) float64 {
	if len(c.Rates) == 0 {
		return 1
	}
	code, ok := o.Fields["CurrencyIsoCode"]
	if !ok || code.Str == "" || code.Str == c.Default {
		return 1
	}
	if r, ok := c.Rates[code.Str]; ok {
		return r
	}
	return 1
}

// Snapshot renders the opportunity as trigger entries and the API show it:
// every known field, ExpectedRevenue derived when null, amounts converted to
// the default currency when rates are configured (originals kept as
// Original<Field>).
func (c Currency) Snapshot(o *Opportunity) map[string]cdc.Value {
	snap := o.Snapshot()
	if r := c.Rate(o); r != 1 {
		for _, f := range []string{"Amount", "ExpectedRevenue"} {
			if v, ok := snap[f]; ok && v.Kind == cdc.KindNumber {
				snap["Original"+f] = v
				snap[f] = cdc.Number(v.Num * r)
			}
		}
	}
	return snap
}
