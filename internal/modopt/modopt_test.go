package modopt

import (
	"strings"
	"testing"

	mgrv1 "github.com/mgrplane/mgrplane/api/mgr/v1"
)

func TestCheck(t *testing.T) {
	intOpt := &mgrv1.ModuleOption{Name: "n", Type: mgrv1.OptionType_OPTION_TYPE_INT, DefaultValue: "1", Min: "-5", Max: "10"}
	floatOpt := &mgrv1.ModuleOption{Name: "f", Type: mgrv1.OptionType_OPTION_TYPE_FLOAT, DefaultValue: "0.5", Min: "0", Max: "1"}
	durOpt := &mgrv1.ModuleOption{Name: "d", Type: mgrv1.OptionType_OPTION_TYPE_DURATION, DefaultValue: "1s", Max: "1m"}
	boolOpt := &mgrv1.ModuleOption{Name: "b", Type: mgrv1.OptionType_OPTION_TYPE_BOOL, DefaultValue: "false"}
	enumOpt := &mgrv1.ModuleOption{Name: "e", Type: mgrv1.OptionType_OPTION_TYPE_STRING, DefaultValue: "a", AllowedValues: []string{"a", "b"}}
	tests := map[string]struct {
		o       *mgrv1.ModuleOption
		in      string
		want    string
		wantErr string
	}{
		"int":              {o: intOpt, in: "+3", want: "3"},
		"int negative":     {o: intOpt, in: "-5", want: "-5"},
		"int below":        {o: intOpt, in: "-6", wantErr: "below the minimum -5"},
		"int above":        {o: intOpt, in: "11", wantErr: "above the maximum 10"},
		"int not int":      {o: intOpt, in: "1.5", wantErr: `"1.5" is not an int`},
		"float":            {o: floatOpt, in: "0.250", want: "0.25"},
		"float nan":        {o: floatOpt, in: "NaN", wantErr: "not a float"},
		"float above":      {o: floatOpt, in: "1.01", wantErr: "above the maximum 1"},
		"duration":         {o: durOpt, in: "90s", wantErr: "above the maximum 1m0s"},
		"duration ok":      {o: durOpt, in: "1500ms", want: "1.5s"},
		"duration bad":     {o: durOpt, in: "5", wantErr: "not a duration"},
		"bool":             {o: boolOpt, in: "1", want: "true"},
		"bool bad":         {o: boolOpt, in: "yes", wantErr: "not a bool (true or false)"},
		"allowed":          {o: enumOpt, in: "b", want: "b"},
		"not allowed":      {o: enumOpt, in: "c", wantErr: "not one of the allowed values a, b"},
		"too long":         {o: enumOpt, in: strings.Repeat("x", MaxValueLen+1), wantErr: "at most 1024"},
		"invalid utf8":     {o: enumOpt, in: "\xff", wantErr: "not valid UTF-8"},
		"unspecified type": {o: &mgrv1.ModuleOption{}, in: "x", wantErr: "is not one of string"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Check(tc.o, tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Check(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Check(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := map[string]struct {
		o       *mgrv1.ModuleOption
		wantErr string
	}{
		"ok":               {o: &mgrv1.ModuleOption{Type: mgrv1.OptionType_OPTION_TYPE_INT, DefaultValue: "3", Min: "1", Max: "5"}},
		"ok string empty":  {o: &mgrv1.ModuleOption{Type: mgrv1.OptionType_OPTION_TYPE_STRING}},
		"no type":          {o: &mgrv1.ModuleOption{}, wantErr: "must be one of"},
		"unknown type":     {o: &mgrv1.ModuleOption{Type: 99}, wantErr: "must be one of"},
		"int no default":   {o: &mgrv1.ModuleOption{Type: mgrv1.OptionType_OPTION_TYPE_INT}, wantErr: "default"},
		"min above max":    {o: &mgrv1.ModuleOption{Type: mgrv1.OptionType_OPTION_TYPE_INT, DefaultValue: "3", Min: "5", Max: "1"}, wantErr: "min 5 is above max 1"},
		"bad min":          {o: &mgrv1.ModuleOption{Type: mgrv1.OptionType_OPTION_TYPE_DURATION, DefaultValue: "1s", Min: "x"}, wantErr: "min:"},
		"bounds on string": {o: &mgrv1.ModuleOption{Type: mgrv1.OptionType_OPTION_TYPE_STRING, Max: "x"}, wantErr: "only int, float and duration"},
		"default not allowed": {o: &mgrv1.ModuleOption{Type: mgrv1.OptionType_OPTION_TYPE_STRING, DefaultValue: "c",
			AllowedValues: []string{"a", "b"}}, wantErr: "not one of the allowed values"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := Validate(tc.o)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate: %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzCanonical: for every type, a value that parses has one canonical form,
// itself canonical (parsing it again gives it back), and Check accepts it
// for an unbounded option.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"1", " 07", "-0", "1e3", "0.250", "TRUE", "1500ms", "-1h2m", "x", "", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for typ := mgrv1.OptionType_OPTION_TYPE_STRING; typ <= mgrv1.OptionType_OPTION_TYPE_DURATION; typ++ {
			c, err := Canonical(typ, v)
			if err != nil {
				continue
			}
			again, err := Canonical(typ, c)
			if err != nil || again != c {
				t.Fatalf("%s %q: canonical %q parses to %q, %v", TypeName(typ), v, c, again, err)
			}
			if got, err := Check(&mgrv1.ModuleOption{Type: typ}, v); err != nil || got != c {
				t.Fatalf("%s %q: Check = %q, %v; want %q", TypeName(typ), v, got, err, c)
			}
		}
	})
}
