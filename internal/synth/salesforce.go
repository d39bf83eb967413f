package synth

import "github.com/oppsync/oppsync/pkg/cdc"

// Stage is one value of the standard Opportunity StageName picklist with the
// fields Salesforce derives from it.
type Stage struct {
	Name                 string
	Probability          float64
	IsClosed, IsWon      bool
	ForecastCategory     string // API value
	ForecastCategoryName string // label
}

// Stages is the standard StageName picklist, in sales order.
var Stages = []Stage{
	{"Prospecting", 10, false, false, "Pipeline", "Pipeline"},
	{"Qualification", 10, false, false, "Pipeline", "Pipeline"},
	{"Needs Analysis", 20, false, false, "Pipeline", "Pipeline"},
	{"Value Proposition", 50, false, false, "Pipeline", "Pipeline"},
	{"Id. Decision Makers", 60, false, false, "Pipeline", "Pipeline"},
	{"Perception Analysis", 70, false, false, "Pipeline", "Pipeline"},
	{"Proposal/Price Quote", 75, false, false, "BestCase", "Best Case"},
	{"Negotiation/Review", 90, false, false, "Forecast", "Commit"},
	{"Closed Won", 100, true, true, "Closed", "Closed"},
	{"Closed Lost", 0, true, false, "Omitted", "Omitted"},
}

// StageByName returns the standard stage with that name.
func StageByName(name string) (Stage, bool) {
	for _, s := range Stages {
		if s.Name == name {
			return s, true
		}
	}
	return Stage{}, false
}

func stageIndex(name string) int {
	for i, s := range Stages {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// Fields returns the stage's fields as they change together on a stage
// change (without LastStageChangeDate and LastModifiedDate).
func (s Stage) Fields() []cdc.Field {
	return []cdc.Field{
		F("StageName", cdc.String(s.Name)),
		F("Probability", cdc.Number(s.Probability)),
		F("IsClosed", cdc.Bool(s.IsClosed)),
		F("IsWon", cdc.Bool(s.IsWon)),
		F("ForecastCategory", cdc.String(s.ForecastCategory)),
		F("ForecastCategoryName", cdc.String(s.ForecastCategoryName)),
	}
}

// Roles is the standard OpportunityContactRole Role picklist ("" = blank).
var Roles = []string{"Decision Maker", "Economic Buyer", "Evaluator", "Influencer", "Technical Buyer", "Business User", "Other", ""}

var (
	oppTypes     = []string{"New Customer", "Existing Customer - Upgrade", "Existing Customer - Replacement", "Existing Customer - Downgrade"}
	leadSources  = []string{"Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other", "Trade Show", "Word of mouth"}
	regions      = []string{"AMER", "EMEA", "APAC", "LATAM"}
	productLines = []string{"Hardware", "Software", "Services", "Hardware;Software", "Software;Services", "Hardware;Software;Services"}
	products     = []string{"Platform Licenses", "Implementation", "Support Renewal", "Expansion", "Pilot", "Enterprise Agreement", "Add-on Seats", "Data Migration"}
	nextSteps    = []string{"Send proposal", "Schedule demo", "Legal review", "Follow up with CFO", "Security questionnaire", "Pricing call", "Technical deep dive", ""}
	companyWords = []string{"Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Tyrell", "Cyberdyne", "Wonka", "Aperture", "Gringotts", "Oscorp", "Pied Piper", "Dunder Mifflin", "Massive Dynamic", "Nakatomi", "Monarch"}
	companyKinds = []string{"Corp", "Inc", "Ltd", "GmbH", "Holdings", "Group", "Industries", "Systems"}
	cities       = [][2]string{{"San Francisco", "United States"}, {"London", "United Kingdom"}, {"Berlin", "Germany"}, {"Tokyo", "Japan"}, {"Sydney", "Australia"}, {"Toronto", "Canada"}, {"São Paulo", "Brazil"}, {"Paris", "France"}}
	streets      = []string{"1 Market St", "221B Baker St", "Friedrichstr. 68", "1-1 Marunouchi", "200 George St", "100 King St W", "Av. Paulista 1000", "8 Rue de Rivoli"}
	origins      = []string{
		"com/salesforce/api/soap/61.0;client=DataLoader",
		"com/salesforce/api/rest/61.0;client=SfdcInternalAPI/",
		"com/salesforce/api/rest/61.0;client=SfdcInternalAPI/",
		"com/salesforce/api/rest/60.0;client=Workbench/",
		"",
	}
)

// F builds a changed field, for hand-written changes.
func F(name string, v cdc.Value) cdc.Field { return cdc.Field{Name: name, Value: v, Changed: true} }

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// SalesforceID builds an 18-character Salesforce-style id from a 3-character
// key prefix ("006", "003", "00k", ...) and a number: prefix, pod "8c",
// zeros, the number in base 62, and the 3-character case-safe checksum.
func SalesforceID(prefix string, n uint64) string {
	b := []byte(prefix + "8c0000")
	var digits [6]byte
	for i := 5; i >= 0; i-- {
		digits[i] = base62[n%62]
		n /= 62
	}
	b = append(b[:9], digits[:]...)
	return string(b) + idChecksum(string(b))
}

// idChecksum is Salesforce's 15→18 suffix: one character per 5-character
// chunk encoding which of its characters are upper case.
func idChecksum(id15 string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
	out := make([]byte, 3)
	for i := 0; i < 3; i++ {
		flags := 0
		for j := 0; j < 5; j++ {
			c := id15[i*5+j]
			if c >= 'A' && c <= 'Z' {
				flags |= 1 << j
			}
		}
		out[i] = alphabet[flags]
	}
	return string(out)
}
