package timefmt

import (
	"os"
	"strings"
	"time"
)

// localZone is time.Local under its real name. Go names the zone read from
// /etc/localtime "Local" (and a TZ path by the path), which tells a reader
// nothing; the name is recovered from TZ or the /etc/localtime link.
func localZone() *time.Location {
	tz, set := os.LookupEnv("TZ")
	link, _ := os.Readlink("/etc/localtime")
	return resolveLocal(time.Local, tz, set, link)
}

// resolveLocal names local (the runtime's Local zone) from the TZ value and
// the /etc/localtime link target; it returns local itself when no name is
// found or the named zone cannot be loaded.
func resolveLocal(local *time.Location, tz string, tzSet bool, link string) *time.Location {
	name := local.String()
	tz = strings.TrimPrefix(tz, ":")
	switch {
	case name == "Local" && (!tzSet || tz == "/etc/localtime"):
		name = link
	case name != "Local" && !strings.HasPrefix(name, "/"):
		return local // Go has the IANA name already (TZ=Asia/Tokyo)
	}
	const dir = "zoneinfo/"
	i := strings.LastIndex(name, dir)
	if i < 0 {
		return local
	}
	loc, err := time.LoadLocation(name[i+len(dir):])
	if err != nil {
		return local
	}
	return loc
}

// zoneName is how InZone names loc at t: its IANA name, or for a Local
// zone that has none its abbreviation at t ("JST", "CET").
func zoneName(t time.Time, loc *time.Location) string {
	name := loc.String()
	if name == "Local" {
		name, _ = t.In(loc).Zone()
	}
	return name
}
